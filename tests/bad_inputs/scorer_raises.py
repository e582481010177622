"""A scorer with a bug: the records have no "answer" field (the reference is "output")."""


def score(record: dict, answer: str) -> bool:
    """Right when the answer is the reference, exactly."""
    return answer.strip() == record["answer"].strip()
