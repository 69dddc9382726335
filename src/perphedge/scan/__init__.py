"""perphedge.scan"""
