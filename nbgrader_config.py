"""nbgrader configuration of the course.

Layout: the instructor versions in ``solutions/`` are nbgrader's *source*; the generated
student versions go to ``notebooks/`` (nbgrader's *release*). Grading happens in a course
directory outside the repository (see the README): point ``--CourseDirectory.root`` there
and copy this file with it.
"""

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Cell timeout, chosen deliberately: the longest graded cell trains an autoencoder for 10
# epochs (about 10 s on a 2-core CPU; the check's own budget is 45 s). nbgrader's default of
# 30 s would fail correct work on a slow or busy machine; 300 s still ends a runaway loop.
c.ExecutePreprocessor.timeout = 300
c.Execute.timeout = 300
# A kernel that dies (e.g. os._exit in student code) costs its notebook, not the run.
c.Execute.interrupt_on_timeout = True
