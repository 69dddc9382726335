"""perphedge.venues"""
