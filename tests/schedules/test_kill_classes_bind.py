"""How a built class (`Scheduled`, every name but the hand-written five) binds its
arguments, against torch's and OneFlow's own StepLR: the messages for too many, twice
given or unknown arguments and a wrong-length per-group list name the value and what
was expected; verbose's default (docs/mutation.md: what a full mutation run found
unchecked).
"""

from __future__ import annotations

import oneflow as flow
import pytest
import torch

import dualtrain.lr_scheduler as D
from dualtrain.errors import ConfigError

T = torch.optim.lr_scheduler
F = flow.optim.lr_scheduler


def torch_opt(n=2):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1} for _ in range(n)]
    return torch.optim.SGD(groups, lr=0.1)


def oneflow_opt():
    return flow.optim.SGD([flow.nn.Parameter(flow.zeros(2))], lr=0.4)


def test_too_many_positional_arguments():
    """StepLR takes step_size, gamma, last_epoch and verbose positionally: a fifth is
    refused, as torch refuses a fourth (it has no verbose) with a TypeError."""
    with pytest.raises(TypeError):
        T.StepLR(torch_opt(), 2, 0.5, -1, 7)
    with pytest.raises(TypeError) as info:
        D.StepLR(torch_opt(), 2, 0.5, -1, False, 7)
    assert isinstance(info.value, ConfigError)
    assert str(info.value) == "StepLR: takes at most 4 arguments, got 5"


def test_last_epoch_and_last_step_together_are_refused():
    with pytest.raises(ConfigError) as info:
        D.StepLR(torch_opt(), 2, last_epoch=-1, last_step=-1)
    assert str(info.value) == "StepLR: give last_epoch or last_step, not both"


def test_an_unknown_argument_is_named():
    """torch raises TypeError for it; the message names the class, the key and the
    arguments it takes."""
    with pytest.raises(TypeError):
        T.StepLR(torch_opt(), 2, gama=0.5)
    with pytest.raises(ConfigError) as info:
        D.StepLR(torch_opt(), 2, gama=0.5)
    assert str(info.value) == "StepLR: unknown argument 'gama' (expected: step_size, gamma)"


def test_a_per_group_list_of_the_wrong_length_is_named():
    with pytest.raises(ConfigError) as info:
        D.CosineWithMinLR(torch_opt(2), 10, min_lr=[0.1, 0.2, 0.3])
    assert str(info.value) == (
        "CosineWithMinLR: min_lr must have one value per param group (2), got 3: [0.1, 0.2, 0.3]"
    )


def test_verbose_defaults_to_false_as_in_torch_and_oneflow(capsys):
    """torch 2.x saves no verbose; OneFlow saves verbose=False; neither prints."""
    theirs, ours = T.StepLR(torch_opt(), 2), D.StepLR(torch_opt(), 2)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    theirs, ours = F.StepLR(oneflow_opt(), 2), D.StepLR(oneflow_opt(), 2, flavor="oneflow")
    assert ours.state_dict()["verbose"] is theirs.state_dict()["verbose"] is False
    assert capsys.readouterr().out == ""
