"""muP coordinate check: python scripts/coord_check.py model=mlp 'widths=[64,256,1024]' out=cc.json"""

from linzoo.run.coord_check import main

if __name__ == "__main__":
    main()
