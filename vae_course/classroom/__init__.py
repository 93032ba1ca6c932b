"""Classroom tools for instructors: the student edition, grading and the command line.

Imports the layers below it; `import vae_course` does not import it (it needs nbformat).
"""
