"""The one error type the course raises for bad input or an unusable setup."""


class CourseError(Exception):
    """A problem the learner can fix; the message says what happened and what to do."""
