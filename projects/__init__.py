# Copyright (c) EVLab contributors.
"""EVLab plugin packages, one per paper; importing one registers it."""
