"""instructor-side references of graded functions, never shipped to students"""
