// The TorchScript source of the helper methods every exported module carries (see
// torchscript_export_helpers.h). Plain text: no LibTorch header is needed here.
#include "formats/torchscript/torchscript_export_helpers.h"

namespace edgepress::formats {

// Helper methods for ONNX semantics TorchScript has no single call for. Every helper takes
// tensors (shape-valued inputs included) and reads them back as lists itself, so the
// generated forward() is one line per node whatever is constant.
extern const char* const kTorchScriptExportHelpers = R"TS(
def _ints(self, t: Tensor) -> List[int]:
    r: List[int] = t.to(4).reshape([-1]).tolist()
    return r

def _reshape(self, x: Tensor, shape: Tensor, allowzero: int) -> Tensor:
    s = self._ints(shape)
    if allowzero == 0:
        for i in range(len(s)):
            if s[i] == 0:
                s[i] = x.size(i)
    return x.reshape(s)

def _flatten(self, x: Tensor, axis: int) -> Tensor:
    if axis < 0:
        axis += x.dim()
    outer = 1
    for i in range(axis):
        outer *= x.size(i)
    inner = 1
    for i in range(axis, x.dim()):
        inner *= x.size(i)
    return x.reshape([outer, inner])

def _gather(self, x: Tensor, idx: Tensor, axis: int) -> Tensor:
    if axis < 0:
        axis += x.dim()
    i = idx.to(4)
    i = torch.where(i < 0, i + x.size(axis), i)
    xs: List[int] = x.shape
    shape: List[int] = xs[:axis] + i.shape + xs[axis + 1:]
    return torch.index_select(x, axis, i.reshape([-1])).reshape(shape)

def _shape(self, x: Tensor, start: int, end: int) -> Tensor:
    s: List[int] = x.shape
    return torch.tensor(s[start:end], dtype=4, device=x.device)

def _unsqueeze(self, x: Tensor, axes_t: Tensor) -> Tensor:
    axes = self._ints(axes_t)
    r = x.dim() + len(axes)
    for i in range(len(axes)):
        if axes[i] < 0:
            axes[i] += r
    axes.sort()
    for a in axes:
        x = x.unsqueeze(a)
    return x

def _squeeze(self, x: Tensor, axes_t: Optional[Tensor]) -> Tensor:
    if axes_t is None:
        return x.squeeze()
    axes = self._ints(axes_t)
    for i in range(len(axes)):
        if axes[i] < 0:
            axes[i] += x.dim()
    axes.sort(reverse=True)
    for a in axes:
        x = x.squeeze(a)
    return x

def _slice(self, x: Tensor, starts_t: Tensor, ends_t: Tensor, axes_t: Optional[Tensor], steps_t: Optional[Tensor]) -> Tensor:
    starts = self._ints(starts_t)
    ends = self._ints(ends_t)
    axes = list(range(len(starts)))
    if axes_t is not None:
        axes = self._ints(axes_t)
    steps = [1 for _ in starts]
    if steps_t is not None:
        steps = self._ints(steps_t)
    for i in range(len(starts)):
        a = axes[i]
        if a < 0:
            a += x.dim()
        d = x.size(a)
        s = starts[i]
        e = ends[i]
        st = steps[i]
        if s < 0:
            s += d
        if e < 0:
            e += d
        if st > 0:
            s = min(max(s, 0), d)
            e = min(max(e, 0), d)
            if e < s:
                e = s
            x = x.narrow(a, s, e - s)
            if st > 1:
                x = torch.index_select(x, a, torch.arange(0, e - s, st, device=x.device))
        else:
            s = min(max(s, 0), d - 1)
            e = min(max(e, -1), d - 1)
            x = torch.index_select(x, a, torch.arange(s, e, st, device=x.device))
    return x

def _split(self, x: Tensor, axis: int, sizes_t: Optional[Tensor], parts: int) -> List[Tensor]:
    if axis < 0:
        axis += x.dim()
    if sizes_t is not None:
        return torch.split(x, self._ints(sizes_t), axis)
    each = (x.size(axis) + parts - 1) // parts
    return torch.split(x, each, axis)

def _expand(self, x: Tensor, shape_t: Tensor) -> Tensor:
    shape = self._ints(shape_t)
    xs: List[int] = x.shape
    r = max(len(xs), len(shape))
    out: List[int] = []
    for i in range(r):
        a = 1
        if i >= r - len(xs):
            a = xs[i - (r - len(xs))]
        b = 1
        if i >= r - len(shape):
            b = shape[i - (r - len(shape))]
        out.append(b if a == 1 else a)
    return x.expand(out)

def _range(self, start: Tensor, limit: Tensor, delta: Tensor) -> Tensor:
    s = start.to(7).item()
    n = torch.ceil((limit.to(7) - s) / delta.to(7)).clamp_min(0).to(4).item()
    i = torch.arange(0, int(n), dtype=7, device=start.device)
    return (i * delta.to(7).item() + s).to(start.dtype)

def _reduce_mean(self, x: Tensor, axes_t: Optional[Tensor], axes_attr: List[int], keep: bool) -> Tensor:
    axes = axes_attr
    if axes_t is not None:
        axes = self._ints(axes_t)
    if len(axes) == 0:
        axes = list(range(x.dim()))
    return torch.mean(x, axes, keep)

def _along(self, p: Tensor, x: Tensor, axis: int) -> Tensor:
    if p.numel() == 1:
        return p.reshape([])
    if axis < 0:
        axis += x.dim()
    s = [1 for _ in range(x.dim())]
    s[axis] = p.numel()
    return p.reshape(s)

def _dequant(self, x: Tensor, scale: Tensor, zp: Optional[Tensor], axis: int) -> Tensor:
    v = x.to(6)
    if zp is not None:
        v = v - self._along(zp, x, axis).to(6)
    return (v * self._along(scale, x, axis)).to(scale.dtype)

def _quant(self, x: Tensor, scale: Tensor, zp: Optional[Tensor], axis: int, lo: float, hi: float, dtype: int) -> Tensor:
    v = torch.round(x.to(6) / self._along(scale, x, axis).to(6))
    if zp is not None:
        v = v + self._along(zp, x, axis).to(6)
    return torch.clamp(v, lo, hi).to(dtype)

def _nbits(self, a: Tensor, b: Tensor, scales: Tensor, zp: Optional[Tensor], n: int, k: int, block: int) -> Tensor:
    blocks = (k + block - 1) // block
    bb = b.reshape([n, blocks * block // 2]).to(2)
    q = torch.stack([torch.remainder(bb, 16), torch.div(bb, 16, rounding_mode='floor')], -1)
    q = q.reshape([n, blocks, block]).to(6)
    z = torch.full([1], 8.0, device=a.device)
    if zp is not None:
        if zp.dtype == 0:
            per_row = (blocks + 1) // 2
            zb = zp.reshape([n, per_row]).to(2)
            z = torch.stack([torch.remainder(zb, 16), torch.div(zb, 16, rounding_mode='floor')], -1)
            z = z.reshape([n, 2 * per_row]).narrow(1, 0, blocks).to(6).reshape([n, blocks, 1])
        else:
            z = zp.to(6).reshape([n, blocks, 1])
    w = (q - z) * scales.to(6).reshape([n, blocks, 1])
    w = w.reshape([n, blocks * block]).narrow(1, 0, k).to(a.dtype)
    return torch.matmul(a, w.t())

def _layer_norm(self, x: Tensor, w: Tensor, b: Optional[Tensor], axis: int, eps: float) -> Tensor:
    if axis < 0:
        axis += x.dim()
    xs: List[int] = x.shape
    return torch.layer_norm(x, xs[axis:], w, b, eps)

def _reduce(self, kind: int, x: Tensor, axes_t: Optional[Tensor], axes_attr: List[int], keep: bool, noop: bool) -> Tensor:
    axes = axes_attr
    if axes_t is not None:
        axes = self._ints(axes_t)
    if len(axes) == 0:
        if noop:
            return x
        axes = list(range(x.dim()))
    if kind == 0:
        return torch.sum(x, axes, keep)
    if kind == 1:
        return torch.amax(x, axes, keep)
    return torch.amin(x, axes, keep)

def _pad(self, x: Tensor, pads_t: Tensor, value: Optional[Tensor], axes_t: Optional[Tensor], mode: int) -> Tensor:
    pads = self._ints(pads_t)
    rank = x.dim()
    axes = list(range(rank))
    if axes_t is not None:
        axes = self._ints(axes_t)
    n = len(axes)
    for i in range(n):
        if axes[i] < 0:
            axes[i] += rank
    if mode == 0:
        tp = [0 for _ in range(2 * rank)]
        for i in range(n):
            k = rank - 1 - axes[i]
            tp[2 * k] = pads[i]
            tp[2 * k + 1] = pads[i + n]
        v = 0.0
        if value is not None:
            if value.numel() == 1:
                v = float(value.reshape([]).item())
        return torch.constant_pad_nd(x, tp, v)
    for i in range(n):
        a = axes[i]
        dim = x.size(a)
        b = pads[i]
        e = pads[i + n]
        if b < 0:
            x = x.narrow(a, -b, dim + b)
            dim += b
            b = 0
        if e < 0:
            x = x.narrow(a, 0, dim + e)
            dim += e
            e = 0
        if b > 0 or e > 0:
            j = torch.arange(-b, dim + e, device=x.device)
            if mode == 1:
                j = j.clamp(0, dim - 1)
            elif mode == 3:
                j = torch.remainder(j, dim)
            else:
                period = 2 * (dim - 1)
                j = torch.remainder(j, period)
                j = torch.where(j >= dim, period - j, j)
            x = torch.index_select(x, a, j)
    return x

def _rnn(self, kind: int, x: Tensor, w: Tensor, r: Tensor, b: Optional[Tensor], lens: Optional[Tensor], h0: Optional[Tensor], c0: Optional[Tensor], p: Optional[Tensor], hidden: int, direction: int, layout: int, lbr: int) -> List[Tensor]:
    if layout != 0:
        x = x.transpose(0, 1)
    H = hidden
    gates = 1
    if kind == 1:
        gates = 3
    if kind == 2:
        gates = 4
    dirs = 1
    if direction == 2:
        dirs = 2
    seq = x.size(0)
    if lens is not None:
        assert bool((lens == seq).all()), "sequence_lens shorter than the sequence"
    h_init = torch.zeros([dirs, x.size(1), H], dtype=x.dtype, device=x.device)
    c_init = h_init
    if h0 is not None:
        h_init = h0.transpose(0, 1) if layout != 0 else h0
    if c0 is not None:
        c_init = c0.transpose(0, 1) if layout != 0 else c0
    ys: List[Tensor] = []
    hs: List[Tensor] = []
    cs: List[Tensor] = []
    for d in range(dirs):
        reverse = direction == 1 or d == 1
        wd = w[d]
        rd = r[d]
        wb = torch.zeros([gates * H], dtype=x.dtype, device=x.device)
        rb = wb
        if b is not None:
            wb = b[d].narrow(0, 0, gates * H)
            rb = b[d].narrow(0, gates * H, gates * H)
        xw = torch.matmul(x, wd.t()) + wb
        h = h_init[d]
        cell = c_init[d]
        steps: List[Tensor] = [h for _ in range(seq)]
        for s in range(seq):
            t = seq - 1 - s if reverse else s
            xt = xw[t]
            if kind == 0:
                h = torch.tanh(xt + torch.matmul(h, rd.t()) + rb)
            elif kind == 1:
                hr = torch.matmul(h, rd.t())
                z = torch.sigmoid(xt.narrow(1, 0, H) + hr.narrow(1, 0, H) + rb.narrow(0, 0, H))
                rg = torch.sigmoid(xt.narrow(1, H, H) + hr.narrow(1, H, H) + rb.narrow(0, H, H))
                rbh = rb.narrow(0, 2 * H, H)
                if lbr != 0:
                    cand = torch.tanh(xt.narrow(1, 2 * H, H) + rg * (hr.narrow(1, 2 * H, H) + rbh))
                else:
                    cand = torch.tanh(xt.narrow(1, 2 * H, H) + torch.matmul(rg * h, rd.narrow(0, 2 * H, H).t()) + rbh)
                h = (1 - z) * cand + z * h
            else:
                g = xt + torch.matmul(h, rd.t()) + rb
                i = g.narrow(1, 0, H)
                o = g.narrow(1, H, H)
                f = g.narrow(1, 2 * H, H)
                cc = g.narrow(1, 3 * H, H)
                if p is not None:
                    i = i + p[d].narrow(0, 0, H) * cell
                    f = f + p[d].narrow(0, 2 * H, H) * cell
                cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(cc)
                if p is not None:
                    o = o + p[d].narrow(0, H, H) * cell
                h = torch.sigmoid(o) * torch.tanh(cell)
            steps[t] = h
        ys.append(torch.stack(steps, 0))
        hs.append(h)
        cs.append(cell)
    y = torch.stack(ys, 1)
    yh = torch.stack(hs, 0)
    yc = torch.stack(cs, 0)
    if layout != 0:
        y = y.permute([2, 0, 1, 3])
        yh = yh.transpose(0, 1)
        yc = yc.transpose(0, 1)
    return [y, yh, yc]
)TS";

}  // namespace edgepress::formats
