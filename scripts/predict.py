"""Predict on your own images: python scripts/predict.py ckpt_path=<run>/checkpoints/last.ckpt inputs=PATH"""

from linzoo.run.cli import predict

if __name__ == "__main__":
    predict()
