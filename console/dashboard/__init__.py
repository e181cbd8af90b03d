"""The line at a glance, for supervisors: counts and ages, no report content."""
