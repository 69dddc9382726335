"""perphedge.mechanics"""
