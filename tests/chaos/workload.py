# The chaos run's Python workload: objects of every common kind built,
# hashed, sorted, serialised and printed. Deterministic output (run with
# PYTHONHASHSEED=0).
import hashlib
import json
import re

words = ["w%d" % (i * 7919 % 10007) for i in range(60000)]
counts = {}
for w in words:
    counts[w] = counts.get(w, 0) + 1
print(len(counts), sum(counts.values()))
pairs = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
print(pairs[:10])
tree = {"k%d" % i: {"v": [j * i for j in range(i % 17)], "s": "x" * (i % 31)} for i in range(20000)}
blob = json.dumps(tree, sort_keys=True)
print(len(blob), hashlib.sha256(blob.encode()).hexdigest())
back = json.loads(blob)
print(back["k1234"], back == tree)
text = " ".join(words)
print(len(re.findall(r"w1\d*7", text)), hashlib.md5(text.encode()).hexdigest())
big = [list(range(i % 100)) for i in range(30000)]
print(sum(map(len, big)), sum(sum(x) for x in big))
s = set()
for i in range(100000):
    s.add((i * 2654435761) % 1000003)
print(len(s), min(s), max(s))
chunks = [bytes(range(256)) * (i % 9) for i in range(5000)]
print(hashlib.sha1(b"".join(chunks)).hexdigest())
