"""Manual BCEs that misbehave as functions, not as formulas: explain must give each a verdict and a non-zero exit."""

import ctypes
import os
import sys
import time

import numpy as np


def hangs(y_true, y_pred):
    time.sleep(3600)


def exits(y_true, y_pred):
    sys.exit(0)


def exits_hard(y_true, y_pred):
    os._exit(0)


def segfaults(y_true, y_pred):
    ctypes.string_at(0)


def floods(y_true, y_pred):
    for _ in range(100):
        print("x" * (1 << 20))
    return np.mean(y_true)
