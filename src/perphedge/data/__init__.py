"""perphedge.data"""
