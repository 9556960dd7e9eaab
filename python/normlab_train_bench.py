"""The framework side of `normlab bench train`: the same networks in PyTorch (eager) and JAX
(jit), timed per training step when those packages are importable. Neither is a dependency
of normlab: when neither is installed, `available()` returns an empty list and the bench
prints normlab's numbers alone.

Each measurement runs in a child interpreter (`$NORMLAB_PYTHON`, else this interpreter's
executable, else `python3`, running this file) pinned to
the first `threads` cores (`os.sched_setaffinity`) with the framework's thread count set
before it is imported (`torch.set_num_threads`; XLA's CPU client for JAX), so 1- and
2-thread numbers come from one run.

A step is what normlab times: forward, softmax cross-entropy (mean), backward, SGD with
momentum 0.9, weight decay 5e-4 on conv/linear weights, lr 0.1, on one fixed float32 batch
(standard normal inputs, uniform labels). BatchNorm is in train mode (batch statistics,
running statistics updated). Models (`NormBench.TrainBenchModel`):

- plain-2d: input (1, 8, 8), 3 x [conv 3x3 (32, no bias) + norm + ReLU], global average
  pooling, linear to 10 classes.
- plain-1d: the same with Conv1d on (1, 40).
- resnet20 / resnet56: the CIFAR ResNet (He et al. 2016, sec. 4.2) with option-A
  shortcuts (stride-2 subsampling, zero-padded channels), widths 16/32/64, on (1, 28, 28).

Swift calls `available()` and `measure(framework, threads, jobs, min_seconds, min_steps,
max_steps)`; `jobs` is a JSON list of `{model, norm, batch}` and the result a JSON list of
`{ms: [...]}` or `{error: "..."}` in the same order.
"""
import importlib.util
import json
import os
import subprocess
import sys
import time

FRAMEWORKS = ("torch", "jax")
NORMS = {"bn": "bn", "batch_norm": "bn", "batchnorm": "bn", "none": "none", "gn": "gn", "group_norm": "gn"}


def available():
    """The frameworks importable here (checked without importing them), or — when
    $NORMLAB_PYTHON names another interpreter for the child side — importable there."""
    if os.environ.get("NORMLAB_PYTHON"):
        code = "import importlib.util as u; print(','.join(n for n in %r if u.find_spec(n)))" % (FRAMEWORKS,)
        try:
            out = subprocess.run([os.environ["NORMLAB_PYTHON"], "-c", code], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return []
        return [n for n in out.stdout.strip().split(",") if n in FRAMEWORKS] if out.returncode == 0 else []
    out = []
    for name in FRAMEWORKS:
        try:
            if importlib.util.find_spec(name) is not None:
                out.append(name)
        except (ImportError, ValueError):
            pass
    return out


def _python():
    exe = os.environ.get("NORMLAB_PYTHON")
    if exe:
        return exe
    if sys.executable and os.path.basename(sys.executable).startswith("python"):
        return sys.executable
    return "python3"


def measure(framework, threads, jobs, min_seconds, min_steps, max_steps):
    """Times `jobs` (a JSON list) in a child interpreter; a JSON list, one result per job."""
    jobs = json.loads(jobs)
    return json.dumps(_measure(framework, threads, jobs, min_seconds, min_steps, max_steps))


def _measure(framework, threads, jobs, min_seconds, min_steps, max_steps):
    request = json.dumps({"framework": framework, "threads": int(threads), "jobs": list(jobs),
                          "min_seconds": float(min_seconds), "min_steps": int(min_steps),
                          "max_steps": int(max_steps)})
    env = dict(os.environ)
    if framework == "jax":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=%s intra_op_parallelism_threads=%d"
                            % ("true" if threads > 1 else "false", threads)).strip()
        env["JAX_PLATFORMS"] = "cpu"
    env["OMP_NUM_THREADS"] = str(threads)
    try:
        proc = subprocess.run([_python(), os.path.abspath(__file__)], input=request, capture_output=True,
                              text=True, env=env, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [{"error": "%s child failed: %s" % (framework, e)} for _ in jobs]
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]
        return [{"error": "%s child failed: %s" % (framework, last[:200])} for _ in jobs]
    return json.loads(proc.stdout)


# ----------------------------------------------------------------------------- child side

def _batch(model, size, seed=7):
    import numpy as np
    rng = np.random.default_rng(seed)
    shape = {"plain-2d": (1, 8, 8), "plain-1d": (1, 40)}.get(model, (1, 28, 28))
    x = rng.standard_normal((size,) + shape).astype(np.float32)
    y = rng.integers(0, 10, size=size).astype(np.int64)
    return x, y


def _sample(step, min_seconds, min_steps, max_steps, warmup=3):
    for _ in range(warmup):
        step()
    times, total = [], 0.0
    while len(times) < max_steps and (len(times) < min_steps or total < min_seconds):
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        times.append(dt * 1e3)
        total += dt
    return times


def _resnet_depth(model):
    return {"resnet20": 3, "resnet56": 9}.get(model)


# --- PyTorch

def _torch_model(model, norm, groups=32):
    import torch
    from torch import nn

    def nrm(c, dim):
        if norm == "bn":
            return nn.BatchNorm2d(c) if dim == 2 else nn.BatchNorm1d(c)
        if norm == "gn":
            return nn.GroupNorm(min(groups, c), c)
        return nn.Identity()

    if model in ("plain-2d", "plain-1d"):
        dim = 2 if model == "plain-2d" else 1
        conv = nn.Conv2d if dim == 2 else nn.Conv1d
        layers, c = [], 1
        for _ in range(3):
            layers += [conv(c, 32, 3, padding=1, bias=False), nrm(32, dim), nn.ReLU()]
            c = 32
        pool = nn.AdaptiveAvgPool2d(1) if dim == 2 else nn.AdaptiveAvgPool1d(1)
        return nn.Sequential(*layers, pool, nn.Flatten(), nn.Linear(32, 10))

    n = _resnet_depth(model)
    if n is None:
        raise ValueError("unknown model %s" % model)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.n1 = nrm(cout, 2)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.n2 = nrm(cout, 2)
            self.stride, self.pad = stride, cout - cin

        def forward(self, x):
            out = torch.relu(self.n1(self.c1(x)))
            out = self.n2(self.c2(out))
            sc = x
            if self.stride != 1 or self.pad:
                sc = x[:, :, ::self.stride, ::self.stride]
                sc = nn.functional.pad(sc, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
            return torch.relu(out + sc)

    layers = [nn.Conv2d(1, 16, 3, 1, 1, bias=False), nrm(16, 2), nn.ReLU()]
    cin = 16
    for stage, width in enumerate((16, 32, 64)):
        for i in range(n):
            layers.append(Block(cin, width, 2 if (stage > 0 and i == 0) else 1))
            cin = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def _torch_job(job, threads, min_seconds, min_steps, max_steps):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(7)
    net = _torch_model(job["model"], job["norm"], job["groups"])
    net.train()
    decay = [p for n, p in net.named_parameters() if p.dim() > 1]
    other = [p for n, p in net.named_parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": other, "weight_decay": 0}],
                          lr=0.1, momentum=0.9)
    x, y = _batch(job["model"], job["batch"])
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    return _sample(step, min_seconds, min_steps, max_steps)


# --- JAX

def _jax_job(job, threads, min_seconds, min_steps, max_steps):
    import jax
    import jax.numpy as jnp
    from jax import lax

    model, norm = job["model"], job["norm"]
    dim = 1 if model == "plain-1d" else 2
    key = jax.random.PRNGKey(7)
    dn = ("NCH", "OIH", "NCH") if dim == 1 else ("NCHW", "OIHW", "NCHW")
    axes = (0, 2) if dim == 1 else (0, 2, 3)

    def conv_w(k, cin, cout):
        shape = (cout, cin) + (3,) * dim
        return jax.random.normal(k, shape, jnp.float32) * jnp.sqrt(2.0 / (cin * 3 ** dim))

    def conv(x, w, stride=1):
        return lax.conv_general_dilated(x, w, (stride,) * dim, [(1, 1)] * dim, dimension_numbers=dn)

    def bshape(v):
        return v.reshape((1, -1) + (1,) * dim)

    def nrm(x, p, s):
        if norm == "none":
            return x, s
        if norm == "gn":
            n, c = x.shape[:2]
            g = min(job["groups"], c)
            xg = x.reshape((n, g, -1))
            m = xg.mean(-1, keepdims=True)
            v = xg.var(-1, keepdims=True)
            xh = ((xg - m) * lax.rsqrt(v + 1e-5)).reshape(x.shape)
            return xh * bshape(p["w"]) + bshape(p["b"]), s
        m = x.mean(axes)
        v = x.var(axes)
        cnt = x.size / x.shape[1]
        xh = (x - bshape(m)) * bshape(lax.rsqrt(v + 1e-5))
        ns = {"rm": 0.9 * s["rm"] + 0.1 * lax.stop_gradient(m),
              "rv": 0.9 * s["rv"] + 0.1 * lax.stop_gradient(v) * cnt / (cnt - 1)}
        return xh * bshape(p["w"]) + bshape(p["b"]), ns

    def norm_init(c):
        return {"w": jnp.ones(c), "b": jnp.zeros(c)}, {"rm": jnp.zeros(c), "rv": jnp.ones(c)}

    params, state, plan = {}, {}, []
    keys = iter(jax.random.split(key, 200))

    def add_conv(name, cin, cout):
        params[name] = {"w": conv_w(next(keys), cin, cout)}
        params[name + "n"], state[name + "n"] = norm_init(cout)

    if model in ("plain-2d", "plain-1d"):
        cin = 1
        for i in range(3):
            add_conv("c%d" % i, cin, 32)
            plan.append(("plain", "c%d" % i))
            cin = 32
        feat = 32
    else:
        n = _resnet_depth(model)
        add_conv("stem", 1, 16)
        plan.append(("plain", "stem"))
        cin = 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(n):
                name = "s%db%d" % (stage, i)
                add_conv(name + "a", cin, width)
                add_conv(name + "b", width, width)
                plan.append(("block", name, 2 if (stage > 0 and i == 0) else 1, width - cin))
                cin = width
        feat = 64
    params["fc"] = {"w": jax.random.uniform(next(keys), (10, feat), jnp.float32, -1, 1) / jnp.sqrt(feat),
                    "b": jnp.zeros(10)}

    def forward(p, s, x):
        ns = {}
        for item in plan:
            if item[0] == "plain":
                name = item[1]
                x, ns[name + "n"] = nrm(conv(x, p[name]["w"]), p[name + "n"], s[name + "n"])
                x = jax.nn.relu(x)
            else:
                _, name, stride, pad = item
                h, ns[name + "an"] = nrm(conv(x, p[name + "a"]["w"], stride), p[name + "an"], s[name + "an"])
                h = jax.nn.relu(h)
                h, ns[name + "bn"] = nrm(conv(h, p[name + "b"]["w"]), p[name + "bn"], s[name + "bn"])
                sc = x
                if stride != 1 or pad:
                    sc = x[:, :, ::stride, ::stride]
                    sc = jnp.pad(sc, ((0, 0), (pad // 2, pad - pad // 2), (0, 0), (0, 0)))
                x = jax.nn.relu(h + sc)
        x = x.mean(axis=tuple(range(2, x.ndim)))
        return x @ p["fc"]["w"].T + p["fc"]["b"], ns

    def loss_fn(p, s, x, y):
        logits, ns = forward(p, s, x)
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), ns

    @jax.jit
    def train_step(p, v, s, x, y):
        (loss, ns), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, x, y)
        g = jax.tree_util.tree_map(lambda gi, pi: gi + 5e-4 * pi if pi.ndim > 1 else gi, g, p)
        v = jax.tree_util.tree_map(lambda vi, gi: 0.9 * vi + gi, v, g)
        p = jax.tree_util.tree_map(lambda pi, vi: pi - 0.1 * vi, p, v)
        return p, v, ns, loss

    xs, ys = _batch(model, job["batch"])
    x, y = jnp.asarray(xs), jnp.asarray(ys.astype("int32"))
    box = [params, jax.tree_util.tree_map(jnp.zeros_like, params), state]

    def step():
        p, v, s, loss = train_step(box[0], box[1], box[2], x, y)
        loss.block_until_ready()
        box[0], box[1], box[2] = p, v, s

    return _sample(step, min_seconds, min_steps, max_steps)


def _child():
    req = json.loads(sys.stdin.read())
    threads = req["threads"]
    try:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:threads]))
    except (AttributeError, OSError):
        pass
    run = {"torch": _torch_job, "jax": _jax_job}[req["framework"]]
    out = []
    for job in req["jobs"]:
        name, *options = job["norm"].split(":")
        groups = [int(o.split("=")[1]) for o in options if o.startswith("num_groups=")]
        job = dict(job, norm=NORMS.get(name.lower(), None), groups=groups[0] if groups else 32)
        if options and not (job["norm"] == "gn" and len(options) == len(groups)):
            job["norm"] = None
        if job["norm"] is None:
            out.append({"error": "norm not implemented on the framework side"})
            continue
        try:
            out.append({"ms": run(job, threads, req["min_seconds"], req["min_steps"], req["max_steps"])})
        except Exception as e:  # one failed job must not lose the others
            out.append({"error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")})
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    _child()
