"""vmacd.config"""
