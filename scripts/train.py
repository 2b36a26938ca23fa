"""Train a linzoo model: python scripts/train.py model=transformer [key=value ...]"""

from linzoo.run.cli import train

if __name__ == "__main__":
    train()
