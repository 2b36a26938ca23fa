"""Sample digits from a trained LM: python scripts/sample.py ckpt_path=<run>/checkpoints/last.ckpt num=64 [digit=7]"""

from linzoo.run.cli import sample

if __name__ == "__main__":
    sample()
