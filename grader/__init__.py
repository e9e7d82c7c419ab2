"""grader: automated grading and leaderboard for deep-learning course assignments."""
