"""muP coordinate check: python scripts/coord_check.py model=mlp 'widths=[64,256,1024]' out=cc.json"""

from linzoo.run.cli import coord_check

if __name__ == "__main__":
    coord_check()
