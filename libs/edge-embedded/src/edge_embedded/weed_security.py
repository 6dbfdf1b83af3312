"""What keeps other local processes out of the embedded ``weed mini``: besides the S3 API
(which checks the S3 keys), its master, volume and filer servers open HTTP and gRPC ports
that, left as they are, serve, list and delete objects without any credentials. Made afresh
at every start (only this one ``weed`` process uses them) in an owner-only directory:

- JWT signing keys, so that the volume server refuses reads and writes of a file that the
  master did not sign for, and the filer refuses unsigned HTTP requests;
- a CA and one certificate, so that every gRPC port requires mutual TLS (weed does not check
  host names, so one certificate serves every part);
- ``security.toml`` pointing at them (read through ``weed -config_dir``).

The master and filer HTTP APIs are switched off altogether (``weed mini -disableHttp``): the
master hands a signed token to anyone who asks, and deletes a whole collection on request.
"""

import datetime
import ipaddress
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_core.secretfile import write_secret

# Every part of weed that serves or dials gRPC.
_GRPC_PARTS = ["master", "volume", "filer", "s3", "admin", "worker", "client"]


def write_security_config(directory: Path) -> Path:
    """Write fresh keys, certificates and ``security.toml`` into ``directory`` (mode 0700);
    returns the directory, for ``weed -config_dir``."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_key, ca_cert = _certificate("edge-weed-ca", None)
    node_key, node_cert = _certificate("edge-weed", (ca_key, ca_cert))
    files = {
        "ca.crt": ca_cert.public_bytes(serialization.Encoding.PEM),
        "node.crt": node_cert.public_bytes(serialization.Encoding.PEM),
        "node.key": node_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }
    for name, content in files.items():
        write_secret(directory / name, content)
    jwt = {name: secrets.token_urlsafe(32) for name in ("write", "read", "filer", "filer_read")}
    lines = [
        "[jwt.signing]",
        f'key = "{jwt["write"]}"',
        "[jwt.signing.read]",
        f'key = "{jwt["read"]}"',
        "[jwt.filer_signing]",
        f'key = "{jwt["filer"]}"',
        "[jwt.filer_signing.read]",
        f'key = "{jwt["filer_read"]}"',
        "[access]",
        "ui = false",
        "[filer.expose_directory_metadata]",
        "enabled = false",
        "[grpc]",
        f'ca = "{directory / "ca.crt"}"',
    ]
    for part in _GRPC_PARTS:
        lines += [
            f"[grpc.{part}]",
            f'cert = "{directory / "node.crt"}"',
            f'key = "{directory / "node.key"}"',
        ]
    write_secret(directory / "security.toml", ("\n".join(lines) + "\n").encode())
    return directory


def _certificate(
    name: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A CA (``issuer`` None) or a certificate for both ends of a connection, signed by it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[1].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    signer = issuer[0] if issuer else key
    return key, builder.sign(signer, hashes.SHA256())
