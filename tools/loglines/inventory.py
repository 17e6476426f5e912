#!/usr/bin/env python3
"""Print every INFO/WARN/ERROR log call of the daemons' source, one a line:
level<TAB>file<TAB>message<TAB>keys. Direct hclog calls (log.Info("msg",
"k", v...)) and rate-limited ones (rl.Warn("rule", "msg", ...)).
Handshake machine events are not calls: docs/logs.md lists them by step.
Used to write docs/logs.md; TestLogsDocumented checks the doc against it."""
import os, re, sys

ROOTS = ["cmd", "pkg", "mgmt", "ctrl", "data", "internal"]
CALL = re.compile(r'\.(Info|Warn|Error)\(')
STR = re.compile(r'"((?:[^"\\]|\\.)*)"')

def calls(text):
    for m in CALL.finditer(text):
        # the argument list up to the matching parenthesis
        i, depth = m.end(), 1
        while i < len(text) and depth:
            c = text[i]
            if c == '"':
                j = i + 1
                while text[j] != '"':
                    j += 2 if text[j] == '\\' else 1
                i = j
            elif c in '([{':
                depth += 1
            elif c in ')]}':
                depth -= 1
            i += 1
        yield m.group(1).upper(), text[m.end():i - 1]

def split_args(s):
    out, depth, cur, i = [], 0, '', 0
    while i < len(s):
        c = s[i]
        if c == '"':
            j = i + 1
            while s[j] != '"':
                j += 2 if s[j] == '\\' else 1
            cur += s[i:j + 1]; i = j + 1; continue
        if c in '([{': depth += 1
        if c in ')]}': depth -= 1
        if c == ',' and depth == 0:
            out.append(cur.strip()); cur = ''
        else:
            cur += c
        i += 1
    if cur.strip(): out.append(cur.strip())
    return out

def inventory(root="."):
    rows = []
    for r in ROOTS:
        for dp, _, fs in os.walk(os.path.join(root, r)):
            if "internal/sim" in dp or "/testdata" in dp:
                continue
            for f in fs:
                if not f.endswith(".go") or f.endswith("_test.go"):
                    continue
                p = os.path.join(dp, f)
                text = "\n".join(l for l in open(p).read().split("\n") if not l.lstrip().startswith("//"))
                for lvl, args in calls(text):
                    a = split_args(args)
                    if not a or not a[0].startswith('"'):
                        continue
                    first = a[0]
                    # rl.Warn("rule", "message", ...) or rl.Warn("rule-"+x, "message", ...)
                    rest = a[1:]
                    if len(a) > 1 and a[1].startswith('"') and len(a) % 2 == 0 and re.search(r'\b(rl|rlog|haLog|refusals|lim|limit)\b|l\.refusals', text[:0] + p + args) is None:
                        pass
                    ratelimited = (len(a) % 2 == 0 and len(a) > 1 and a[1].startswith('"')) or (not re.fullmatch(r'"[^"]*"', first))
                    if ratelimited and len(a) > 1 and a[1].startswith('"'):
                        msg, rest = a[1], a[2:]
                    else:
                        msg = first
                    if not re.fullmatch(r'"[^"]*"', msg):
                        continue
                    keys = [k.strip('"') for k in rest[0::2] if re.fullmatch(r'"[a-z_]+"', k)]
                    rows.append((lvl, os.path.relpath(p, root), msg.strip('"'), ",".join(keys)))
    return sorted(set(rows), key=lambda r: (r[1], r[2]))

if __name__ == "__main__":
    for r in inventory(sys.argv[1] if len(sys.argv) > 1 else "."):
        print("\t".join(r))
