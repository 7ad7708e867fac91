"""Shared test setup: one torch thread (the machine is shared; see the common brief)."""

try:
    import torch
except ImportError:  # torch is optional; bar_sdk must work without it
    torch = None

if torch is not None:
    torch.set_num_threads(1)
