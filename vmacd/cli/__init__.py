"""vmacd.cli"""
