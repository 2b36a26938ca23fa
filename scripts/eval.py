"""Test a checkpoint: python scripts/eval.py ckpt_path=<run>/checkpoints/last.ckpt"""

from linzoo.run.cli import evaluate

if __name__ == "__main__":
    evaluate()
