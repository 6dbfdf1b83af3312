{{/* "edge" for a release named edge (not "edge-edge"), else "<release>-edge". */}}
{{- define "edge.name" -}}
{{- if contains "edge" .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-edge" .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "edge.labels" -}}
app.kubernetes.io/name: edge
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "edge.selector" -}}
app.kubernetes.io/name: edge
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "edge.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag }}{{- end -}}

{{/* The environment every service shares: the ConfigMap, then the Secret. */}}
{{- define "edge.envFrom" -}}
- configMapRef:
    name: {{ include "edge.name" . }}
- secretRef:
    name: {{ .Values.secrets.name }}
{{- end -}}

{{- define "edge.httpProbes" -}}
readinessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 20
  failureThreshold: 3
{{- end -}}

{{- define "edge.securityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65534
  runAsGroup: 65534
  fsGroup: 65534
{{- end -}}
