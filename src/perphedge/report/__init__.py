"""perphedge.report"""
