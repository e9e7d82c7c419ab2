"""VU Deep Learning, assignment 2: operations with a hand-written forward and backward."""

import torch


class Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        s = 1 / (1 + torch.exp(-x))
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * s * (1 - s)


class ReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x > 0).to(grad.dtype)


class Exp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y


class Log(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Plus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        return x + y

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Multiply(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * y, grad * x


class Divide(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x / y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad / y, -grad * x / (y * y)


class Sum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.sum()

    @staticmethod
    def backward(ctx, grad):
        return grad * torch.ones(ctx.shape, dtype=grad.dtype)


class RowSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.columns = x.shape[1]
        return x.sum(dim=1)

    @staticmethod
    def backward(ctx, grad):
        return grad[:, None].expand(-1, ctx.columns)


class Normalize(torch.autograd.Function):
    """Each row divided by its sum."""

    @staticmethod
    def forward(ctx, x):
        total = x.sum(dim=1, keepdim=True)
        ctx.save_for_backward(x, total)
        return x / total

    @staticmethod
    def backward(ctx, grad):
        x, total = ctx.saved_tensors
        # d(x_i / S)/dx_j = delta_ij / S - x_i / S^2
        return grad / total - (grad * x).sum(dim=1, keepdim=True) / total**2


class MatrixMultiply(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return grad @ b.T, a.T @ grad


class Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        return grad @ weight, grad.T @ x, grad.sum(dim=0)


class Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
        p = e / e.sum(dim=-1, keepdim=True)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, grad):
        (p,) = ctx.saved_tensors
        return p * (grad - (grad * p).sum(dim=-1, keepdim=True))


class SoftmaxCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets):
        shifted = logits - logits.max(dim=1, keepdim=True).values
        log_p = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
        ctx.save_for_backward(log_p, targets)
        return -log_p[torch.arange(len(targets)), targets].mean()

    @staticmethod
    def backward(ctx, grad):
        log_p, targets = ctx.saved_tensors
        p = torch.exp(log_p)
        p[torch.arange(len(targets)), targets] -= 1
        return grad * p / len(targets), None
