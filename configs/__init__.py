# Makes configs/ the package linzoo.configs of the installed wheel (see setup.py).
