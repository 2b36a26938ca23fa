"""Export a trained net: python scripts/export.py ckpt_path=<run>/checkpoints/last.ckpt format=onnx [quantize=int8]"""

from linzoo.run.cli import export

if __name__ == "__main__":
    export()
