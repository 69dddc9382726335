"""perphedge.cli"""
