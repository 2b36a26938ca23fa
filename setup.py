"""The packages of the wheel; everything else is in pyproject.toml.

configs/ stays at the top of the repository and goes into the wheel as the package
``linzoo.configs`` (Hydra finds it at ``pkg://linzoo.configs``). pyproject.toml alone
cannot add such a mapped package to an automatic package search, hence this file.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["linzoo", "linzoo.*"]), "linzoo.configs"],
    package_dir={"linzoo.configs": "configs"},
    package_data={"linzoo.configs": ["*.yaml", "**/*.yaml"]},
)
