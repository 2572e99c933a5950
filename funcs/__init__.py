"""The core shared by every learning rule: config, data, target, association, loop, results."""
