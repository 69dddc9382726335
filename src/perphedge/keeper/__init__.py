"""perphedge.keeper"""
