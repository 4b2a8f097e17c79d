"""
A character-level bigram language model trained with SGD, laid out like
nanoGPT's train.py: configuration lives in module-level globals, which
configurator.py overrides from the command line (--key=value).
"""
import math
import os
import time

import numpy as np

# -----------------------------------------------------------------------------
# default config values
out_dir = 'out-bigram'
eval_interval = 50
log_interval = 25
eval_iters = 20
always_save_checkpoint = False
# data
dataset = 'builtin'
batch_size = 32
block_size = 16
# optimizer
learning_rate = 2.0
max_iters = 200
weight_decay = 1e-4
grad_clip = 5.0
# learning rate decay
decay_lr = True
warmup_iters = 20
lr_decay_iters = 200
min_lr = 0.2
# system
device = 'cpu'
seed = 1337
# -----------------------------------------------------------------------------
config_keys = [k for k, v in globals().items() if not k.startswith('_') and isinstance(v, (int, float, bool, str))]
exec(open('configurator.py').read())  # overrides from the command line
config = {k: globals()[k] for k in config_keys}
# -----------------------------------------------------------------------------

TEXT = (
    "the quick brown fox jumps over the lazy dog while the cat sleeps by the warm fire. "
    "a small model learns which letter tends to follow which, and nothing more. "
    "language models of every size start from counts like these before they learn context. "
) * 20
chars = sorted(set(TEXT))
stoi = {ch: i for i, ch in enumerate(chars)}
data = np.array([stoi[c] for c in TEXT], dtype=np.int64)
n = int(0.9 * len(data))
train_data, val_data = data[:n], data[n:]
vocab_size = len(chars)
rng = np.random.default_rng(seed)


def get_batch(split):
    source = train_data if split == 'train' else val_data
    ix = rng.integers(0, len(source) - block_size - 1, size=batch_size)
    x = np.stack([source[i:i + block_size] for i in ix])
    y = np.stack([source[i + 1:i + 1 + block_size] for i in ix])
    return x.ravel(), y.ravel()


def loss_and_grad(W, x, y):
    logits = W[x]
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = -np.log(probs[np.arange(len(y)), y] + 1e-12).mean()
    probs[np.arange(len(y)), y] -= 1.0
    grad = np.zeros_like(W)
    np.add.at(grad, x, probs / len(y))
    return loss, grad


def estimate_loss(W):
    out = {}
    for split in ('train', 'val'):
        out[split] = float(np.mean([loss_and_grad(W, *get_batch(split))[0] for _ in range(eval_iters)]))
    return out


def get_lr(it):
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


os.makedirs(out_dir, exist_ok=True) if always_save_checkpoint else None
W = np.zeros((vocab_size, vocab_size))
best_val_loss = 1e9
t0 = time.time()
for iter_num in range(max_iters + 1):
    lr = get_lr(iter_num) if decay_lr else learning_rate
    if iter_num % eval_interval == 0:
        losses = estimate_loss(W)
        print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        best_val_loss = min(best_val_loss, losses['val'])
    loss, grad = loss_and_grad(W, *get_batch('train'))
    grad += weight_decay * W
    norm = np.linalg.norm(grad)
    if grad_clip and norm > grad_clip:
        grad *= grad_clip / norm
    W -= lr * grad
    if iter_num % log_interval == 0:
        dt = time.time() - t0
        t0 = time.time()
        print(f"iter {iter_num}: loss {loss:.4f}, time {dt * 1000:.2f}ms")

print(f"val_loss={best_val_loss:.4f}")
