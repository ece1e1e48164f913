"""Service catalogue (政务服务事项): the service items a city offers, per the national service-guide elements.

Serves clause 一(2) of the action plan (item management, 审批标准一致性) and underpins 搜问办评: every
search, answer, application and rating refers to an item of this catalogue.
"""
