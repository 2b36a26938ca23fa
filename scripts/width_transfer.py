"""muP's width transfer: python scripts/width_transfer.py -m (the grid of configs/width_transfer.yaml; docs/mup.md)"""

from linzoo.run.cli import width_transfer

if __name__ == "__main__":
    width_transfer()
