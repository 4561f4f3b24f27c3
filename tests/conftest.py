"""Shared test settings: one place for the parameters of quick fits, and test callbacks."""

import os

import pytest
import torch
from skorch.callbacks import Callback

# Parallel test workers share the machine's cores: one intra-op thread each keeps
# OpenMP from oversubscribing them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

#: Small networks and few epochs: a fit takes well under a second.
FAST_PARAMS = {"depth": 4, "width": 32, "max_epochs": 5, "random_state": 0, "device": "cpu"}
FAST_CNN_PARAMS = {"depth": 8, "width": 4, "max_epochs": 3, "random_state": 0, "device": "cpu"}


@pytest.fixture
def fast_params():
    return dict(FAST_PARAMS)


class InterruptAt(Callback):
    """Raise ``KeyboardInterrupt`` in the middle of epoch ``epoch`` (Ctrl-C).

    ``during="validation"`` interrupts the epoch's validation pass instead of its
    training pass.
    """

    def __init__(self, epoch, during="training"):
        self.epoch = epoch
        self.during = during

    def on_batch_end(self, net, training=False, **kwargs):
        if training == (self.during == "training") and len(net.history) == self.epoch:
            raise KeyboardInterrupt
