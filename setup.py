"""Packaging glue: the lab package lives in netns-lab/vmaclab (SPEC §2), outside the top level,
which setup.cfg's `packages = find:` cannot express on its own."""
from setuptools import find_packages, setup

LAB = "netns-lab/vmaclab"

setup(
    package_dir={"vmaclab": LAB},
    packages=find_packages(include=["vmacd", "vmacd.*"])
    + ["vmaclab"]
    + ["vmaclab." + sub for sub in find_packages(LAB)],
)
