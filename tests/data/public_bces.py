"""Binary cross-entropies as people publish them, written for the project from the formula or code each source
states (not copied), with the source beside each.  ``tests/instrument/test_public_bces.py`` runs ``explain``'s
diagnosis on each and checks it against ``EXPECTED``: what a careful reader of the source would say departs
from Keras 3, and where.  Every function takes NumPy arrays, as ``explain --manual`` gives them.
"""

from __future__ import annotations

import math

import numpy as np


# PyTorch, torch.nn.BCELoss documentation (https://pytorch.org/docs/stable/generated/torch.nn.BCELoss.html):
# l_n = -w_n [y_n log x_n + (1 - y_n) log(1 - x_n)], reduction 'mean' by default, and "BCELoss clamps its log
# function outputs to be greater than or equal to -100".
def torch_bceloss(y_true, y_pred):
    y, x = y_true.astype(np.float64), y_pred.astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.mean(-(y * np.maximum(np.log(x), -100) + (1 - y) * np.maximum(np.log(1 - x), -100)))


# Keras 2, tf_keras backend.py binary_crossentropy (https://github.com/keras-team/tf-keras/blob/master/tf_keras/backend.py):
# output = clip_by_value(output, epsilon_, 1 - epsilon_); bce = target * log(output + epsilon()) +
# (1 - target) * log(1 - output + epsilon()); return -bce -- written in NumPy, averaged as the loss does.
def keras2_backend(y_true, y_pred):
    y, p = y_true.astype(np.float64), np.clip(y_pred.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.mean(-(y * np.log(p + 1e-7) + (1 - y) * np.log(1 - p + 1e-7)))


# scikit-learn, sklearn.metrics.log_loss up to 1.2 (https://scikit-learn.org/1.2/modules/generated/sklearn.metrics.log_loss.html):
# "eps: Log loss is undefined for p=0 or p=1, so probabilities are clipped to max(eps, min(1 - eps, p))", eps=1e-15,
# the mean over samples.  In float64, as log_loss converts its input.
def sklearn_log_loss(y_true, y_pred):
    y, p = y_true.astype(np.float64), np.clip(y_pred.astype(np.float64), 1e-15, 1 - 1e-15)
    return np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))


# Click4Ai, "Binary Cross-Entropy" exercise (https://click4ai.perfionixai.com/problems/binary-cross-entropy):
# "Use np.log ... Clip y_pred to [1e-15, 1-1e-15] to avoid log(0) ... Return a single float (the average loss)"
# -- np.clip on the array as it arrives (float32 from a model).
def click4ai_numpy(y_true, y_pred):
    p = np.clip(y_pred, 1e-15, 1 - 1e-15)
    return -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))


# Deep-ML problem 263 as shown on eetcode (https://www.eetcode.com/deepml/263): a pure-Python loop, each p clamped
# with max(min(p, 1 - epsilon), epsilon), epsilon = 1e-15, math.log, and the mean rounded to 6 decimals.  On float32
# elements NumPy compares min(p, 1 - 1e-15) in float32, where 1 - 1e-15 is 1.0: p = 1 stays, and math.log(0) raises.
def deepml_loop_rounded(y_true, y_pred, epsilon=1e-15):
    total = 0.0
    for t, q in zip(y_true, y_pred):
        p = max(min(q, 1.0 - epsilon), epsilon)
        total += -(t * math.log(p) + (1 - t) * math.log(1 - p))
    return round(total / len(y_true), 6)


# Wikipedia, "Cross-entropy", section "Cross-entropy loss function and logistic regression"
# (https://en.wikipedia.org/wiki/Cross-entropy): J = -1/N sum_n [y_n log yhat_n + (1 - y_n) log(1 - yhat_n)], no clip.
def wikipedia_logistic(y_true, y_pred):
    y, p = y_true.astype(np.float64), y_pred.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


# Data Science Stack Exchange question "Binary Cross Entropy | Manual Scalars", as collected in the
# nvidia/Nemotron-CC-Math-v1 data set (https://huggingface.co/datasets/nvidia/Nemotron-CC-Math-v1):
# (-y*np.log(p)) - ((1-y)*np.log(1-p)), rounded to 2 decimals -- here over arrays, as a mean.
def stackexchange_rounded(y_true, y_pred):
    with np.errstate(divide="ignore", invalid="ignore"):
        return round(float(np.mean((-y_true * np.log(y_pred)) - ((1 - y_true) * np.log(1 - y_pred)))), 2)


# NAIC course notebook "Implementation of Binary Cross-entropy loss using Numpy"
# (https://github.com/NAICNO/Deep-learning-intro-BIoNT-ML-course): binary_cross_entropy(y_pred, y_true), the
# prediction first, clipped to [1e-15, 1 - 1e-15], the mean.
def naic_pred_first(y_pred, y_true):
    y_pred = np.clip(y_pred, 1e-15, 1 - 1e-15)
    return np.mean(-(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred)))


# Flux.jl, Flux.Losses.binarycrossentropy (https://fluxml.ai/Flux.jl/stable/models/losses/):
# agg(-y * log(yhat + eps) - (1 - y) * log(1 - yhat + eps)) with eps = eps(yhat), the machine epsilon of yhat's type
# (1.19e-7 for Float32), agg = mean.
def flux_binarycrossentropy(y_true, y_pred):
    eps = float(np.finfo(y_pred.dtype).eps)
    y, p = y_true.astype(np.float64), y_pred.astype(np.float64)
    return np.mean(-y * np.log(p + eps) - (1 - y) * np.log(1 - p + eps))


# Michael Nielsen, "Neural Networks and Deep Learning", chapter 3, network2.py CrossEntropyCost.fn
# (http://neuralnetworksanddeeplearning.com/chap3.html): np.sum(np.nan_to_num(-y*np.log(a)-(1-y)*np.log(1-a))),
# fn(a, y) with the output a first; the sum over every output, no mean.
def nielsen_network2(a, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))


# The same formula Nielsen states as equation (63), C = -1/n sum_x sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)]:
# the sum over the outputs j, the mean over the samples x.
def nielsen_eq63(y_true, y_pred):
    p = np.clip(y_pred.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.mean(np.sum(-(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)), axis=-1))


# Keras 3 documentation, keras.losses.binary_crossentropy (https://keras.io/api/losses/probabilistic_losses/):
# "Returns: Binary crossentropy loss value. shape = [batch_size, d0, .. dN-1]" -- the per-sample losses, which
# a hand check against the BinaryCrossentropy class then compares as they are.
def keras_function_per_sample(y_true, y_pred):
    p = np.clip(y_pred.astype(np.float64), np.float32(1e-7), np.float32(1 - 1e-7))
    return np.mean(-(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)), axis=-1)


# The same per-sample loss summed over the wrong axes of a rank-3 (batch, time, labels) input: np.sum(axis=(0, 1)),
# one number per label (the shape question of the seed 'Implementing Binary Cross Entropy loss gives different
# answer than Tensorflow's', ../shared/seeds/).
def summed_wrong_axes(y_true, y_pred):
    p = np.clip(y_pred.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.sum(-(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)), axis=(0, 1))


# Information theory's cross-entropy in bits (Wikipedia, "Cross-entropy": "H(p, q) = -sum p(x) log2 q(x)" when
# measured in bits): the textbook formula with log2.
def base2_logs(y_true, y_pred):
    p = np.clip(y_pred.astype(np.float64), 1e-7, 1 - 1e-7)
    return -np.mean(y_true * np.log2(p) + (1 - y_true) * np.log2(1 - p))


# Keras 3 Loss documentation (https://keras.io/api/losses/): "sample_weight acts as reduction weighting coefficient
# for the per-sample losses" -- a hand check that takes sample_weight for the signature and leaves it out.
def weights_dropped(y_true, y_pred, sample_weight=None):
    p = np.clip(y_pred.astype(np.float64), np.float32(1e-7), np.float32(1 - 1e-7))
    return -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))


# TensorFlow, tf.nn.sigmoid_cross_entropy_with_logits documentation
# (https://www.tensorflow.org/api_docs/python/tf/nn/sigmoid_cross_entropy_with_logits): "max(x, 0) - x * z +
# log(1 + exp(-abs(x)))", averaged: what BinaryCrossentropy(from_logits=True) documents.  Correct.
def tf_logits_formula(y_true, y_pred):
    x, z = y_pred.astype(np.float64), y_true.astype(np.float64)
    return np.mean(np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x))))


# The textbook probability formula applied to logits, as in the seed 'Implementing Binary Cross Entropy loss gives
# different answer than Tensorflow's' (manual_bce_probs fed logits; ../shared/seeds/).
def probabilities_formula_on_logits(y_true, y_pred):
    p = np.clip(y_pred.astype(np.float64), 1e-7, 1 - 1e-7)
    return -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))


# Keras 3 as documented, by hand (keras/src/backend/tensorflow/nn.py binary_crossentropy: clip_by_value(output,
# epsilon(), 1 - epsilon()) in the tensor's dtype, then the logs).  Correct.
def keras3_by_hand(y_true, y_pred):
    p = np.clip(y_pred, np.float32(1e-7), np.float32(1 - 1e-7)).astype(np.float64)
    return -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))


# Inputs: ordinary probabilities, the ends p = 0 and 1, a (B, C) batch, a rank-3 batch, logits, weights.
ORDINARY = {"y_true": [1, 0, 1, 0], "y_pred": [0.9, 0.2, 0.6, 0.3]}
EDGES = {"y_true": [1, 0, 1, 0, 1, 0], "y_pred": [1.0, 0.0, 0.0, 1.0, 0.7, 0.2]}
ROWS = {"y_true": [[1, 0, 1], [0, 1, 1]], "y_pred": [[0.9, 0.2, 0.6], [0.3, 0.8, 0.4]]}
RANK3 = {"y_true": [[[1, 0], [0, 1]], [[1, 1], [0, 0]]], "y_pred": [[[0.9, 0.2], [0.3, 0.8]], [[0.6, 0.7], [0.1, 0.4]]]}
LOGITS = {"y_true": [1, 0, 1, 0], "y_pred": [2.0, -1.0, 30.0, -0.5], "from_logits": True}
WEIGHTED = {"y_true": [[1], [0], [1]], "y_pred": [[0.9], [0.2], [0.7]], "sample_weight": [2.0, 2.0, 2.0]}

# (function, inputs, the diagnosis a careful reader gives): "agrees", "agrees:<variant id>" (within the bound, and
# that formula to its last digits), "departs:<variant id>" (the first match), "stops:<step>" (returns Keras's output
# of that step), "shape", "uncatalogued", "warns:<text>" (a warning with that text, whatever the verdict).
EXPECTED = [
    (torch_bceloss, EDGES, "departs:log-clamped-at-100"),
    (keras2_backend, ORDINARY, "agrees:keras2-clip-and-eps"),
    (keras2_backend, EDGES, "departs:keras2-clip-and-eps"),
    (sklearn_log_loss, EDGES, "departs:clip-other-epsilon(1e-15)"),
    (click4ai_numpy, EDGES, "departs:no-clip"),
    (deepml_loop_rounded, EDGES, "warns:on the same values as float64 it returns"),
    (deepml_loop_rounded, ORDINARY, "agrees"),
    (wikipedia_logistic, ORDINARY, "agrees"),
    (wikipedia_logistic, EDGES, "departs:no-clip"),
    (stackexchange_rounded, ORDINARY, "uncatalogued"),
    (naic_pred_first, ORDINARY, "warns:called the other way round, it agrees"),
    (flux_binarycrossentropy, EDGES, "departs:eps-inside-log"),
    (nielsen_network2, ROWS, "warns:first two parameters are (a, y)"),
    (nielsen_eq63, ROWS, "departs:sum-over-axis"),
    (keras_function_per_sample, ROWS, "stops:axis"),
    (summed_wrong_axes, RANK3, "shape"),
    (base2_logs, ORDINARY, "uncatalogued"),
    (weights_dropped, WEIGHTED, "departs:weights-ignored"),
    (tf_logits_formula, LOGITS, "agrees"),
    (probabilities_formula_on_logits, LOGITS, "departs:sigmoid-not-applied"),
    (keras3_by_hand, EDGES, "agrees"),
]
