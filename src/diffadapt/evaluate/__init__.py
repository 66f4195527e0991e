"""Measuring generated digits: the course's LeNet grader, our judge classifier, Fréchet distance."""
