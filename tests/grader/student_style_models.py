"""Models written the way students write them, together using every translated ATen operation.

Each class is a small CIFAR-10 model (3x32x32 in, 10 logits out) in one style: sizes taken from
the batch, functional code with parameters, attention with einsum, upsampling, 1-D and 3-D
layers, in-place arithmetic. The ONNX tests capture each and compare the runtimes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ViewSize(nn.Module):
    """x.view(x.size(0), -1), avg_pool, leaky relu, elu, cat, mean over dims."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(3, 8, 5, padding="same", dilation=1)
        self.bn = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        y = torch.cat([self.conv(x), self.conv2(x)], dim=1)
        y = F.leaky_relu(self.bn(y), 0.1)
        y = F.avg_pool2d(y, 4)
        y = F.elu(y) + y.mean(dim=(2, 3), keepdim=True)
        return self.fc(y.view(y.size(0), -1))


class Activations(nn.Module):
    """Every activation: gelu (exact and tanh), silu, mish, hard ones, softplus, prelu, ..."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, stride=2)
        self.prelu = nn.PReLU(12)
        self.prelu1 = nn.PReLU()
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        y = self.conv(x) * 3
        parts = [
            F.gelu(y),
            F.gelu(y, approximate="tanh"),
            F.silu(y),
            F.mish(y),
            F.hardswish(y),
            F.hardsigmoid(y),
            F.softplus(y),
            F.softplus(y, beta=2, threshold=5),
            torch.tanh(y),
            torch.sigmoid(y),
            F.relu6(y),
            F.selu(y),
            F.celu(y, 0.5),
            self.prelu(y),
            self.prelu1(y),
            F.hardtanh(y, -0.5, 0.5),
            F.logsigmoid(y),
            F.softsign(y),
            F.threshold(y, 0.1, -1.0),
            F.elu(y, alpha=0.7),
        ]
        y = sum(p.mean(dim=(2, 3)) for p in parts)
        return self.fc(y)


class Shapes(nn.Module):
    """A normalising buffer; permute, reshape, chunk, split, stack, slice, flip, pad, expand."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 16 * 2, 10)
        self.register_buffer("mean", torch.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1))

    def forward(self, x):
        x = (x - self.mean) / 0.25
        y = F.max_pool2d(F.relu(self.conv(x)), 2)  # B 8 16 16
        a, b = y.chunk(2, dim=1)  # B 4 16 16 each
        c, d = torch.split(y, [3, 5], dim=1)
        y = torch.stack([a, b], dim=1).flatten(1, 2)  # B 8 16 16
        y = y + c.sum(1, keepdim=True) - d.amax(1, keepdim=True)
        y = y.permute(0, 2, 3, 1).transpose(1, 2).contiguous()  # B 16 16 8
        y = y.reshape(-1, 16, 16 * 8).unsqueeze(1).squeeze(1)
        y = torch.flip(y, dims=[1])[:, ::8, :]  # B 2 128
        y = F.pad(y, (0, 0, 1, 1))[:, 1:-1]
        y = y + y[:, :1].expand(-1, 2, -1)
        return self.fc(y.flatten(1))


class Residual(nn.Module):
    """A projection shortcut, adaptive pooling to 1x1 and 2x2, group/layer/instance norm."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.gn = nn.GroupNorm(4, 16)
        self.conv2 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.inorm = nn.InstanceNorm2d(16, affine=True)
        self.short = nn.Sequential(nn.Conv2d(3, 16, 1, stride=2), nn.BatchNorm2d(16))
        self.ln = nn.LayerNorm(16 * 5)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(16 * 5, 10)

    def forward(self, x):
        y = F.relu(self.gn(self.conv1(x)))
        y = self.inorm(self.conv2(y)) + self.short(x)
        g = F.adaptive_avg_pool2d(y, 1).flatten(1)
        h = F.adaptive_avg_pool2d(y, (2, 2)).flatten(1)
        z = torch.cat([g, h], 1)
        return self.fc(self.drop(self.ln(z)))


class Matmuls(nn.Module):
    """bmm/matmul/einsum attention, softmax, log_softmax, var/std, norm, clamp, where, max.dim."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 8, stride=8)  # B 16 4 4
        self.q = nn.Linear(16, 16)
        self.k = nn.Linear(16, 16)
        self.w = nn.Parameter(torch.randn(16, 10) * 0.1)
        self.b = nn.Parameter(torch.zeros(10))

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)  # B 16 16
        q, k = self.q(t), self.k(t)
        att = torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1)
        t = torch.bmm(att, t) + torch.einsum("bij,bjk->bik", att, t)
        t = (t - t.mean(-1, keepdim=True)) / (t.std(-1, keepdim=True) + 1e-5)
        t = t / t.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        v = t.var(dim=1, unbiased=False) + t.max(dim=1).values
        v = torch.where(v > 0, v, 0.1 * v).clamp(-3, 3)
        out = torch.addmm(self.b, v, self.w)
        return F.log_softmax(out, dim=1) + torch.matmul(v, self.w)


class Upsample(nn.Module):
    """Nearest and bilinear upsampling, a transposed conv, pixel shuffle, padded pooling."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
        self.ps = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(8 * 6 * 6 * 3, 10)

    def forward(self, x):
        y = self.down(x)  # 16x16
        a = F.interpolate(y, scale_factor=2, mode="nearest")  # 32
        b = F.interpolate(y, size=(32, 32), mode="bilinear", align_corners=False)
        c = F.pixel_shuffle(self.ps(y), 2)  # 4ch 32
        c = torch.cat([c, c], 1)
        z = a + b + self.up(y) + c  # 8 32 32
        p = F.max_pool2d(z, 3, stride=3, ceil_mode=False)  # 10
        q = F.avg_pool2d(z, 3, stride=3, padding=1, count_include_pad=False)  # 11
        r = F.max_pool2d(z, 2, stride=2, padding=1)  # 17
        return self.fc(torch.cat([p[:, :, :6, :6], q[:, :, :6, :6], r[:, :, :6, :6]], 1).flatten(1))


class Functional(nn.Module):
    """Functional-style student code: F.conv2d with weights as parameters, x.size arithmetic,
    zeros_like/ones_like, new_zeros with the batch, pow, sqrt, exp, log, abs, reciprocal."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 3, 5, 5) * 0.1)
        self.bias = nn.Parameter(torch.zeros(6))
        self.fc = nn.Linear(6 * 14 * 14, 10)

    def forward(self, x):
        n = x.size(0)
        y = F.conv2d(x, self.weight, self.bias)
        y = (
            F.max_pool2d(y, 2)
            + torch.zeros_like(y[:, :, :14, :14])
            + torch.ones_like(y[:, :, :14, :14])
        )
        y = (
            torch.sqrt(y.pow(2) + 1e-3)
            + torch.exp(-y.abs())
            + torch.log(y.abs() + 1)
            + torch.reciprocal(y.abs() + 1)
        )
        flat = y.reshape(n, -1)
        extra = flat.new_zeros(n, 10)
        return self.fc(flat) + extra + x.new_ones(n, 10) * (x.shape[0] // 2)


class Conv1d(nn.Module):
    """conv1d over rows, avg_pool1d, adaptive_avg_pool1d, cumsum, logsumexp."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(96, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4 + 1, 10)

    def forward(self, x):
        rows = x.permute(0, 2, 1, 3).reshape(x.shape[0], 32, 96).transpose(1, 2)  # B 96 32
        y = F.relu(self.conv(rows))
        y = F.adaptive_avg_pool1d(F.avg_pool1d(y, 2), 4).cumsum(dim=2)
        lse = torch.logsumexp(y.flatten(1), dim=1, keepdim=True)
        return self.fc(torch.cat([y.flatten(1), lse], 1))


class Elementwise(nn.Module):
    """The element-wise tail of the allowlist."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.fc = nn.Linear(4 * 15 * 15, 10)
        self.register_buffer("table", torch.arange(15, dtype=torch.float32))

    def forward(self, x):
        y = self.conv(x) * 2
        a = (
            torch.rsqrt(y.abs() + 1)
            + torch.square(y) * 0.1
            + torch.exp2(-y.abs())
            + torch.expm1(-y.abs())
        )
        a = a + torch.log1p(y.abs()) + torch.log2(y.abs() + 1) + torch.log10(y.abs() + 1)
        a = (
            a
            + torch.trunc(y)
            + torch.frac(y)
            + torch.erf(y)
            + torch.sin(y)
            + torch.cos(y)
            + torch.sign(y)
        )
        a = a + torch.floor(y) + torch.ceil(y) + torch.round(y) + y.clamp_min(0) + y.clamp_max(0)
        a = a + torch.clamp(y, min=torch.zeros_like(y), max=torch.ones_like(y))
        a = (
            a
            + torch.minimum(y, -y)
            + torch.maximum(y, 1 - y)
            + torch.where(y > 0, 1.0, y)
            + torch.where(y < 0, y, 2.0)
        )
        m = torch.logical_or(
            y == 0,
            torch.logical_and(torch.logical_and(y != 1, y >= -1), torch.logical_not(y <= 0.5)),
        )
        a = (
            a
            + torch.masked_fill(y, m, 0.5)
            + torch.lerp(y, a, 0.3)
            + torch.addcmul(y, y, a, value=0.5)
        )
        a = (
            a
            + torch.addcdiv(y, y, a.abs() + 1, value=0.5)
            + torch.fmod(y, 0.7)
            + torch.pow(2.0, -y.abs())
        )
        a = a + self.table + torch.arange(15, dtype=torch.float32) / 15 + torch.full((15,), 0.5)
        a = a + torch.tril(y) - torch.triu(y, 1) + F.rrelu(y, training=False)
        return self.fc(a.flatten(1))


class ShapesMore(nn.Module):
    """unflatten, view_as, expand_as, repeat, narrow, select, index_select, gather, movedim, t,
    squeeze(), type_as, to(dtype), argmax/one-hot gather, reductions, norms."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, stride=4)  # B 8 8 8
        self.fc = nn.Linear(68, 10)
        self.register_buffer("idx", torch.tensor([0, 2, 4, 6]))

    def forward(self, x):
        y = self.conv(x)
        f = y.flatten(1).unflatten(1, (8, 64))  # B 8 64
        g = f.view_as(f.clone()).movedim(1, 2)  # B 64 8
        h = torch.ones(1, 64, 1).expand_as(g) * g
        r = h[:, :4].repeat(1, 2, 1)  # B 8 8
        n = torch.narrow(r, 1, 2, 4).select(2, 1)  # B 4
        s = torch.index_select(r, 2, self.idx)  # B 8 4
        k = r.argmax(dim=2, keepdim=True)  # B 8 1
        gth = torch.gather(r, 2, k).squeeze(2)  # B 8
        red = torch.stack(
            [r.sum(), r.mean(), r.amin(), r.prod(dim=2).mean(), r.min(dim=1)[0].mean()]
        )
        red = (
            red.type_as(x)
            + r.var(dim=(1, 2), correction=0).mean()
            + torch.var_mean(r, dim=1, correction=1)[1].mean()
        )
        w = torch.norm(r, p=1, dim=1) + torch.linalg.vector_norm(r, ord=2, dim=1)  # B 8
        z = torch.cat(
            [
                n,
                s.flatten(1),
                gth,
                w,
                red.expand(x.shape[0], 5)[:, :4] * 1e-3,
                (k.squeeze() > 3).to(torch.float32),
                y[:, :, 0, 0].t().t()[:, :4],
            ],
            1,
        )
        return self.fc(z[:, :68])


class Exotic(nn.Module):
    """conv3d, conv_transpose1d, max/avg pool 3d/1d, adaptive max, pool with indices, rms norm,
    channel shuffle, pixel unshuffle, reflection/replication pad, baddbmm, mm, in-place ops."""

    def __init__(self):
        super().__init__()
        self.c3 = nn.Conv3d(1, 2, (3, 3, 3), padding=1)
        self.t1 = nn.ConvTranspose1d(6, 4, 3, stride=2, padding=1, output_padding=1)
        self.rms = nn.RMSNorm(16)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        v = F.max_pool3d(self.c3(x.unsqueeze(1)), 2)  # B 2 1 16 16
        v = F.avg_pool3d(v, (1, 2, 2)).flatten(1, 2)  # B 2 8 8
        p, i = F.max_pool2d(
            F.pad(v, (1, 1, 1, 1), mode="reflect"), 2, return_indices=True
        )  # B 2 5 5
        q = F.adaptive_max_pool2d(F.pad(v, (1, 1, 1, 1), mode="replicate"), 2)  # B 2 2 2
        u = F.pixel_unshuffle(v, 2)  # B 8 4 4
        u = F.channel_shuffle(u, 2)
        rows = u.flatten(2)  # B 8 16
        rows = self.rms(rows)
        m = torch.baddbmm(rows, rows, rows.transpose(1, 2) @ rows * 0.01)  # B 8 16
        t = self.t1(m[:, :6])  # B 4 32
        t = F.max_pool1d(t, 2)  # B 4 16
        z = torch.cat(
            [
                p.flatten(1),
                q.flatten(1),
                t.flatten(1),
                torch.mm(m[0], m[0].t())[:1].expand(x.shape[0], -1)[:, :6],
            ],
            1,
        )
        z = z.clone()
        z.mul_(2).add_(1)
        z2 = z.clone()
        z2 += z
        return self.fc(z2) + z[:, :10]


MODELS = [ViewSize, Activations, Shapes, Residual, Matmuls, Upsample, Functional, Conv1d,
          Elementwise, ShapesMore, Exotic]  # fmt: skip


class TopTwo(nn.Module):
    """Logits less the mean of the two largest: ``topk`` has no ONNX translation (not in
    :data:`MODELS`: ONNX Runtime cannot run it)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        scores = self.fc(x.flatten(1))
        return scores - torch.topk(scores, 2, dim=1).values.mean(1, keepdim=True)
