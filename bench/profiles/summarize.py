import sys, re, collections
lines = open(sys.argv[1]).read().splitlines()
total = 0; self_ = collections.Counter(); incl = collections.Counter(); threads = collections.Counter()
for ln in lines:
    stack, _, n = ln.rpartition(" ")
    n = int(n); total += n
    frames = stack.split(";")
    threads[frames[0][:60]] += n
    def short(f):
        m = re.match(r"(.*?) \((.*?):(\d+)\)", f)
        return f"{m.group(1)} ({m.group(2).split('site-packages/')[-1].split('/src/')[-1]})" if m else f
    fs = [short(f) for f in frames[1:]] or [frames[0]]
    self_[fs[-1]] += n
    for f in set(fs): incl[f] += n
print("total samples", total)
print("-- threads"); [print(f"{v/total*100:5.1f}% {k}") for k, v in threads.most_common(8)]
print("-- self"); [print(f"{v/total*100:5.1f}% {k}") for k, v in self_.most_common(int(sys.argv[2]) if len(sys.argv)>2 else 25)]
print("-- inclusive"); [print(f"{v/total*100:5.1f}% {k}") for k, v in incl.most_common(int(sys.argv[3]) if len(sys.argv)>3 else 40)]
