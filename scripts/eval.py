"""Test a checkpoint: python scripts/eval.py ckpt_path=<run>/checkpoints/last.ckpt"""

from linzoo.cli import evaluate

if __name__ == "__main__":
    evaluate()
