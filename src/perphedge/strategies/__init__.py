"""perphedge.strategies"""
