"""vmacd.control"""
