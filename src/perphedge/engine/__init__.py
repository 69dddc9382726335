"""perphedge.engine"""
