"""Channel senders: each turns one rendered outbox message into one provider call; none knows of rules."""
