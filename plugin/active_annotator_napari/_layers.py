"""Layer choice helpers shared by the dock widgets (combo boxes of layer names)."""


class LayerChoiceMixin:
    """Needs ``self.viewer``. Fills combo boxes with layer names and looks layers up."""

    @staticmethod
    def _set_items(combo, names, default):
        """Replace a combo's items, keeping the current choice when it still exists."""
        current = combo.currentText()
        if [combo.itemText(i) for i in range(combo.count())] == names:
            return
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(names)
        keep = current if current in names else default
        combo.setCurrentIndex(names.index(keep) if keep in names else -1)
        combo.blockSignals(False)
        if combo.currentText() != current:
            combo.currentTextChanged.emit(combo.currentText())

    def _layer(self, name, kind):
        """The layer called ``name`` if it is of type ``kind``, else None."""
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if isinstance(layer, kind):
                return layer
        return None
