"""Shared test fixtures."""

import types

import pytest


@pytest.fixture
def fake_cuda(monkeypatch):
    """Make torch.cuda look like a GPU (by default a Colab T4: compute capability 7.5, 15.8 GB).

    Its `is_bf16_supported()` says yes, as torch's does on a T4: by default it counts emulation.
    """

    def install(capability=(7, 5), name="Tesla T4", memory=15.8e9):
        props = types.SimpleNamespace(name=name, total_memory=memory)
        monkeypatch.setattr("torch.cuda.is_available", lambda: True)
        monkeypatch.setattr("torch.cuda.get_device_properties", lambda i=0: props)
        monkeypatch.setattr("torch.cuda.get_device_capability", lambda i=0: capability)
        monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda including_emulation=True: True)
        monkeypatch.setattr("torch.cuda.mem_get_info", lambda i=0: (memory * 0.9, memory))

    return install
