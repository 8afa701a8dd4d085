"""torch_infer — a small PyTorch inference loop for scripts/bench.sh.

A transformer-ish model (embedding, encoder blocks with attention and MLP,
layer norms, a vocabulary head) on the CPU with two threads, run for a few
dozen forward passes over batches of varying sequence length under
inference_mode: every pass allocates and frees activation tensors of many
sizes through the C allocator (PyTorch's CPU allocator is posix_memalign with
64-byte alignment).  Prints a rounded checksum that must be the same under
every allocator.   usage: python3 torch_infer.py [scale]
"""
import sys

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))

    def forward(self, x, mask):
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
        x = x + a
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    def __init__(self, vocab=2000, d=128, heads=4, ff=512, layers=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(128, d)
        self.blocks = nn.ModuleList(Block(d, heads, ff) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.emb(ids) + self.pos(torch.arange(t).unsqueeze(0))
        mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        for b in self.blocks:
            x = b(x, mask)
        return self.head(self.ln(x))


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    passes = max(4, int(round(40 * scale)))
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = TinyLM().eval()
    gen = torch.Generator().manual_seed(1)
    checksum = 0.0
    tokens = []
    with torch.inference_mode():
        for i in range(passes):
            seq = 8 + (i * 37) % 96
            batch = 1 + i % 2
            ids = torch.randint(0, 2000, (batch, seq), generator=gen)
            logits = model(ids)
            last = logits[:, -1, :]
            tokens.extend(last.argmax(dim=-1).tolist())
            checksum += float(last.float().softmax(dim=-1).max(dim=-1).values.sum())
    print("passes=%d tokens=%s checksum=%.3f" % (passes, ",".join(map(str, tokens[:64])), checksum))


if __name__ == "__main__":
    main()
