"""Stepping a scheduler with its optimizer and reading the lrs, shared by the
schedule tests that compare ours with torch's and OneFlow's own classes."""

from __future__ import annotations


def lrs(opt):
    """Every param group's lr, as floats."""
    return [float(g["lr"]) for g in opt.param_groups]


def trajectory(sched, opt, steps):
    """The lrs before the first step and after each of `steps` optimizer+scheduler steps."""
    out = [lrs(opt)]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(lrs(opt))
    return out
