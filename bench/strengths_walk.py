"""python bench/strengths_walk.py [CHECKOUT]: trace the value of --strengths 123.5 from argv to steering.hooks.steering_delta: the chain of project
calls that carry it (hops, distinct files) and the returns that hand it back to a caller (going back up).

Run it on two checkouts (git worktree add) to compare a restructuring; it runs `steer-agent probe` on the toy world.
"""
import sys, os
ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
sys.path.insert(0, ROOT)
os.chdir(ROOT)
V = 123.5

def carries(x, depth=0):
    if depth > 3:
        return False
    if type(x).__name__ == "Tensor":
        try:
            return x.numel() > 0 and x.numel() < 4096 and x.dtype.is_floating_point and bool(((x.float() - V).abs() < 1e-3).any())
        except Exception:
            return False
    if isinstance(x, str):
        return x == str(V)
    if isinstance(x, float):
        return abs(x - V) < 1e-6
    if isinstance(x, (list, tuple, set, frozenset)):
        return any(carries(y, depth + 1) for y in list(x)[:50])
    if isinstance(x, dict):
        return any(carries(y, depth + 1) for y in list(x.values())[:50])
    if hasattr(x, "__dict__") and type(x).__module__.split(".")[0] in ("agent", "steering", "tui", "argparse"):
        return any(carries(y, depth + 1) for y in list(vars(x).values())[:50])
    if hasattr(x, "__dataclass_fields__"):
        return any(carries(getattr(x, k, None), depth + 1) for k in x.__dataclass_fields__)
    return False

hops, ups, seen, files = [], 0, set(), []
done = [False]
def prof(frame, event, arg):
    global ups
    if done[0]:
        return
    code = frame.f_code
    fn = code.co_filename
    if not fn.startswith(ROOT) or "/.venv/" in fn or "/tests/" in fn:
        return
    rel = os.path.relpath(fn, ROOT)
    name = f"{rel}:{code.co_name}"
    if event == "call":
        args = [frame.f_locals.get(a) for a in code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]]
        if any(carries(a) for a in args) and name not in seen:
            seen.add(name); hops.append(name)
            if rel not in files: files.append(rel)
            if code.co_name == "steering_delta":
                done[0] = True
    elif event == "return" and carries(arg) and name in seen:
        ups += 1
sys.argv = ["steer-agent", "probe", "--feature", "3", "--strengths", str(V), "--json"]
sys.setprofile(prof)
from agent.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.setprofile(None)
print(f"{len(hops)} hops through {len(files)} files, {ups} returns carry it back up", file=sys.stderr)
for h in hops: print("  ", h, file=sys.stderr)
