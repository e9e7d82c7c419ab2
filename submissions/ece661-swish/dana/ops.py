"""ECE 661 lab 2: Swish, x * sigmoid(x), with a hand-written backward."""

import torch


class Swish(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        s = torch.sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        # d/dx x s(x) = s + x s (1 - s)
        return grad * (s + x * s * (1 - s))
