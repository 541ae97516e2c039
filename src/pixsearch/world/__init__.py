"""The benchmark-world generator: an application of the library, like `cli` and `serve`.

It builds a world of real countries (`countries`), their flags and outlines (`flags`,
`outlines`) pasted into real photographs (`scenes`), questions with referring expressions and
search plans (`questions`, `refexp`), gold trajectories made by running the planned searches
on the world's own index (`trajectories`), the knowledge base (`knowledge`), a dataset card
(`card`), all tied together by `build.build_world` under a `config.WorldConfig`.

What it writes is in the library's formats (`pixsearch.data`: records, knowledge base) plus
`world.json`; the library reads those files and never imports this package.
"""
